//! `hearth audit --api URL`: the online audit of a running node (`POST /v1/admin/audit`, then
//! `GET /v1/admin/audit/{id}` every 200 ms until it ends). Prints the report (one JSON object
//! with `--json`, else a summary) and exits with the report's code, like the offline audit.

use super::cluster::{call, client, runtime};
use std::io::Write;
use std::time::Duration;

/// How often the status is asked for.
const POLL: Duration = Duration::from_millis(200);

/// Runs the online audit of the node at `api` (its HTTP URL) with `threads` threads.
pub fn run(
    api: &str,
    admin_token: Option<&str>,
    threads: usize,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let base = api.trim_end_matches('/');
    let auth = |req: reqwest::RequestBuilder| match admin_token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let status: serde_json::Value = runtime()?.block_on(async {
        let client = client()?;
        let mut url = format!("{base}/v1/admin/audit");
        if threads > 0 {
            url.push_str(&format!("?threads={threads}"));
        }
        let started: serde_json::Value =
            call(auth(client.post(&url)), "start the online audit").await?;
        let id = started
            .get("id")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| anyhow::anyhow!("start the online audit: no id in the answer"))?;
        loop {
            let st: serde_json::Value = call(
                auth(client.get(format!("{base}/v1/admin/audit/{id}"))),
                "online audit status",
            )
            .await?;
            if st.get("state").and_then(serde_json::Value::as_str) != Some("running") {
                return anyhow::Ok(st);
            }
            tokio::time::sleep(POLL).await;
        }
    })?;
    if json {
        writeln!(out, "{status}")?;
    } else {
        write_summary(&status, out)?;
    }
    out.flush()?;
    let code = status
        .get("exit_code")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(i64::from(super::EXIT_ERROR)) as i32;
    if code == super::EXIT_OK {
        return Ok(());
    }
    let why = match status.get("error").and_then(serde_json::Value::as_str) {
        Some(e) => e.to_string(),
        None => status
            .pointer("/report/findings")
            .and_then(serde_json::Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(serde_json::Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default(),
    };
    Err(super::Failed {
        code,
        message: format!("online audit failed: {why}"),
    }
    .into())
}

fn write_summary(st: &serde_json::Value, out: &mut dyn Write) -> std::io::Result<()> {
    let num = |p: &str| st.pointer(p).and_then(serde_json::Value::as_u64);
    let show = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    writeln!(
        out,
        "online audit {} of the log through index {}: {}",
        show(num("/id")),
        show(num("/through_index")),
        st.get("state").and_then(|s| s.as_str()).unwrap_or("?")
    )?;
    if let Some(r) = st.get("report") {
        let log = |f: &str| show(r.pointer(&format!("/log/{f}")).and_then(|v| v.as_u64()));
        writeln!(
            out,
            "log         entries {}..={} ({} verified, {} redacted)",
            log("first_index"),
            log("last_index"),
            log("entries"),
            log("redacted")
        )?;
        writeln!(
            out,
            "signatures  {} checked, {} bad",
            show(r.pointer("/signatures/checked").and_then(|v| v.as_u64())),
            show(r.pointer("/signatures/bad").and_then(|v| v.as_u64()))
        )?;
        for t in r
            .pointer("/projections/tables")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
        {
            let name = t.get("table").and_then(|v| v.as_str()).unwrap_or("?");
            let ok = t.get("matches").and_then(|v| v.as_bool()) == Some(true);
            writeln!(
                out,
                "  {name:<12} {}",
                if ok { "matches" } else { "DIFFERS" }
            )?;
        }
        for f in r
            .get("findings")
            .and_then(|f| f.as_array())
            .into_iter()
            .flatten()
        {
            writeln!(out, "finding: {}", f.as_str().unwrap_or_default())?;
        }
    }
    if let Some(e) = st.get("error").and_then(|e| e.as_str()) {
        writeln!(out, "error: {e}")?;
    }
    Ok(())
}
