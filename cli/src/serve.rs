//! `taskrow serve`: the dashboard ([`taskrow_web`]) as a standalone server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use taskrow::{Client, ClientBuilder, TaskStore};
use taskrow_web::RunNow;
use taskrow_web::standalone::{Config, Server};

use crate::commands::{CliError, Io, task_types_linked};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen. Any address but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The secret every request must carry (at least 16 characters): open the dashboard once
    /// as /?token=… (a cookie keeps it) or send `Authorization: Bearer …`.
    #[arg(
        long,
        env = "TASKROW_WEB_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// A name browsers use to reach the dashboard (a DNS name, a reverse proxy's), accepted in
    /// the Host header besides the listen address (repeat for several).
    #[arg(long = "host-name", value_name = "NAME")]
    pub host_names: Vec<String>,
    /// Show no action and refuse every change.
    #[arg(long)]
    pub read_only: bool,
}

/// Serves the dashboard until Ctrl-C. "Run now" runs the task in this process when the binary
/// links task types (a binary of your own calling `run_cli`), else resets it and wakes workers.
pub(crate) async fn serve(
    store: Arc<dyn TaskStore>,
    args: ServeArgs,
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    io: &mut Io<'_>,
) -> Result<ExitCode, CliError> {
    let (client, run_now) = if task_types_linked() {
        (
            configure(Client::builder(store)).build()?,
            RunNow::InProcess,
        )
    } else {
        (Client::new(store), RunNow::ResetAndWake)
    };
    let mut config = Config::new(args.listen).read_only(args.read_only);
    if let Some(token) = args.token {
        config = config.token(token);
    }
    for name in args.host_names {
        config = config.host_name(name);
    }
    let guarded = config.token.is_some();
    let server = Server::bind_with(client, config, run_now)
        .await
        .map_err(|e| CliError::from(format!("cannot serve the dashboard: {e}")))?;
    writeln!(
        io.out,
        "taskrow dashboard on http://{}/{}{}; Ctrl-C stops it",
        server.local_addr(),
        if guarded {
            " (open it once as /?token=<your token>)"
        } else {
            ""
        },
        if args.read_only { ", read-only" } else { "" },
    )?;
    io.out.flush()?;
    server
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::from(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}
