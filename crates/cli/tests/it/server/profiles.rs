//! Saved sign-ins: `login --profile NAME` saves one beside the default,
//! `--profile NAME` uses it (and only it), and a profile that was never
//! saved is an error that names the saved ones.

use super::harness::Db;

both_backends!(profiles, profiles_sqlite, profiles_postgres);

async fn profiles(db: Db) {
    let server = db.serve().await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let base = server.base.clone();

    // The provider's token saved as a profile; the default stays empty.
    let run = server
        .cli(
            &tenant.token,
            &["login", "--profile", "power", &base, &provider.token],
        )
        .await
        .expect(0);
    assert!(run.stdout.contains("power"), "{}", run.stdout);
    let config = std::fs::read_to_string(server.cli_config.join("config.toml")).unwrap();
    assert!(config.contains("[profiles.power]"), "{config}");

    // With the profile, the provider's view (its tokens); without, the
    // tenant's from the environment.
    let as_provider = server
        .cli(
            "",
            &["--profile", "power", "provider", "list", "--output", "json"],
        )
        .await;
    // A provider may not list providers: the profile's token was used.
    assert_eq!(as_provider.code, Some(4), "{as_provider:?}");
    let tokens = server
        .cli(
            "",
            &["--profile", "power", "token", "list", "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    assert_eq!(tokens.as_array().map(Vec::len), Some(1), "{tokens}");
    // The profile flag after the subcommand, and from the environment.
    server
        .cli("", &["token", "list", "--profile", "power"])
        .await
        .expect(0);

    let missing = server
        .cli(&tenant.token, &["--profile", "nope", "market"])
        .await
        .expect(2);
    assert!(
        missing.stderr.contains("no profile \"nope\"") && missing.stderr.contains("power"),
        "{}",
        missing.stderr
    );
    let bad = server
        .cli(&tenant.token, &["--profile", "a b", "market"])
        .await
        .expect(2);
    assert!(bad.stderr.contains("--profile"), "{}", bad.stderr);
}
