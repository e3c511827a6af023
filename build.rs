//! `sqlx::migrate!` embeds `migrations/` at compile time but does not tell
//! cargo to watch it: without this, a migration added to an unchanged tree
//! left the old set in the binary (seen when a trial migration was added).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
