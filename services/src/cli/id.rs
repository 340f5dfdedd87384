//! `hearth id`: print a node's PeerId (read-only).
//!
//! Prints the base58 PeerId on one line, or with `--json`
//! `{"peer_id": "12D3Koo…", "public_key_hex": "…"}`. It never creates anything: a data directory
//! without an identity is an error (exit 1) — the identity is created by the first
//! `hearth serve`. A damaged key file, a key that is not ed25519 or a key file with permissions
//! other than 0600 is an error naming the file.

use crate::hex::encode as hex;
use crate::identity::NodeIdentity;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `hearth id`.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The node's data directory.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "./hearth-data")]
    pub data_dir: PathBuf,
    /// Print `{"peer_id", "public_key_hex"}` as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prints the PeerId of the node in `args.data_dir`.
pub fn run(args: &IdArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if !args.data_dir.is_dir() {
        anyhow::bail!("data directory {} does not exist", args.data_dir.display());
    }
    let Some(id) = NodeIdentity::load(&args.data_dir)? else {
        anyhow::bail!(
            "no identity in {} (it is created by the first hearth serve)",
            args.data_dir.display()
        );
    };
    if args.json {
        let doc = serde_json::json!({
            "peer_id": id.peer_id().to_base58(),
            "public_key_hex": hex(&id.public_key_bytes()),
        });
        writeln!(out, "{doc}")?;
    } else {
        writeln!(out, "{}", id.peer_id())?;
    }
    Ok(())
}
