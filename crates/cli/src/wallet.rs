//! `suanwang wallet`: a tenant's wallet — its balance, holds, credit and
//! arrears — and, for the operator, top-ups and credit. Amounts are typed
//! in yuan and sent as exact micro-yuan.

use clap::Subcommand;
use suanwang_api::{CreditLimit, TopUp, WalletView};
use suanwang_core::money::{parse_yuan, yuan_text as yuan};

use crate::exit;
use crate::out::{print_json, say};
use crate::remote::{client, Output};

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// A wallet: yours (tenant), or a tenant's (operator, --tenant).
    Show {
        /// The tenant (operator only).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Top up a tenant's wallet (operator).
    Topup {
        /// The tenant's id.
        tenant: String,
        /// Yuan, e.g. 100 or 12.5.
        yuan: String,
        /// Makes a retried top-up harmless [default: a new random id].
        #[arg(long)]
        topup_id: Option<String>,
    },
    /// Grant a tenant credit: how far below zero its wallet may go (operator; 0 withdraws).
    Credit {
        /// The tenant's id.
        tenant: String,
        /// Yuan, e.g. 500.
        yuan: String,
    },
}

pub async fn run(command: WalletCommand, output: Output) -> anyhow::Result<u8> {
    let client = client()?;
    let wallet: WalletView = match command {
        WalletCommand::Show { tenant: None } => client.get("/v1/wallet").await?,
        WalletCommand::Show {
            tenant: Some(tenant),
        } => client.get(&format!("/v1/tenants/{tenant}/wallet")).await?,
        WalletCommand::Topup {
            tenant,
            yuan,
            topup_id,
        } => {
            let amount = parse_yuan("YUAN", &yuan)?;
            let body = TopUp {
                topup_id: topup_id.unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string()),
                amount_micro_yuan: amount,
            };
            client
                .post(
                    &format!("/v1/tenants/{tenant}/wallet/topups"),
                    &serde_json::to_value(&body)?,
                )
                .await?
        }
        WalletCommand::Credit { tenant, yuan } => {
            let body = CreditLimit {
                credit_limit_micro_yuan: parse_yuan("YUAN", &yuan)?,
            };
            client
                .send(
                    reqwest::Method::PUT,
                    &format!("/v1/tenants/{tenant}/wallet/credit"),
                    Some(&serde_json::to_value(&body)?),
                    None,
                )
                .await?
        }
    };
    match output {
        Output::Json => print_json(&wallet)?,
        Output::Text => {
            say(format!(
                "wallet of {}: balance {} yuan, held {} yuan, available {} yuan (credit limit {} yuan)",
                wallet.tenant,
                yuan(wallet.balance_micro_yuan),
                yuan(wallet.held_micro_yuan),
                yuan(wallet.available_micro_yuan),
                yuan(wallet.credit_limit_micro_yuan),
            ));
            if wallet.arrears_micro_yuan != 0 {
                say(format!(
                    "owed (arrears): {} yuan",
                    yuan(wallet.arrears_micro_yuan)
                ));
            }
        }
    }
    Ok(exit::OK)
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute every balance from the ledger's history and compare (operator).
    Check,
}

pub async fn ledger(command: LedgerCommand, output: Output) -> anyhow::Result<u8> {
    let LedgerCommand::Check = command;
    let checked: suanwang_api::LedgerCheckView = client()?.get("/v1/ledger/check").await?;
    match output {
        Output::Json => print_json(&checked)?,
        Output::Text => say(format!(
            "ledger consistent: {} accounts, {} transfers replayed, {} holds open",
            checked.accounts, checked.transfers, checked.open_pendings
        )),
    }
    Ok(exit::OK)
}
