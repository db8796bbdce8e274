//! `sipline-ua`: register a SIP account over WebSocket from the command line
//! and print what happens, until Ctrl-C (which unregisters first).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use sipline_core::{Config, Event, Secret};
use sipline_ua_shell::{Backoff, Phone, ShellEvent};
use tracing_subscriber::EnvFilter;

/// Registers a SIP user agent over WebSocket (RFC 7118) with the sipline core.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// WebSocket URL of the SIP server, e.g. ws://127.0.0.1:8080/.
    #[arg(long, env = "SIPLINE_SERVER")]
    server: String,
    /// Address of record, e.g. sip:alice@sipline.test.
    #[arg(long, env = "SIPLINE_URI")]
    uri: String,
    /// Password (prefer the environment variable: command lines are visible
    /// to other users).
    #[arg(long, env = "SIPLINE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Digest user name, when it differs from the URI's user part.
    #[arg(long)]
    auth_user: Option<String>,
    /// Display name.
    #[arg(long)]
    display_name: Option<String>,
    /// Registration interval to ask for, in seconds.
    #[arg(long, default_value_t = 600)]
    expires: u32,
    /// Exit after the first successful registration (unregistering first).
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut config = Config::new(&args.uri);
    config.password = args.password.map(Secret::new);
    config.auth_username = args.auth_user;
    config.display_name = args.display_name;
    config.register_expires = args.expires;
    let mut phone = Phone::spawn(&args.server, config, Backoff::default())
        .context("starting the user agent")?;
    let mut leaving = false;
    loop {
        tokio::select! {
            ev = phone.next_event() => match ev {
                None => bail!("user agent stopped"),
                Some(ShellEvent::Ua(Event::Registered { .. })) if args.once && !leaving => {
                    leaving = true;
                    phone.unregister();
                }
                Some(ShellEvent::Ua(Event::RegistrationFailed { code, reason, retry_in: None })) => {
                    bail!("registration failed: {code} {reason}");
                }
                Some(ShellEvent::Ua(Event::Unregistered { .. })) if leaving => break,
                Some(_) => {}
            },
            _ = tokio::signal::ctrl_c(), if !leaving => {
                leaving = true;
                phone.unregister();
                // Do not hang on a dead server: the unregistration has 5 s.
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    std::process::exit(130);
                });
            }
        }
    }
    phone.shutdown().await;
    Ok(())
}
