//! suanwang sim: the digital twin, running the same placement engine and state machine on a virtual clock.
