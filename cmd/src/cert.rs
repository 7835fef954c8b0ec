//! `kvctl cert ca|node|client`: certificates for clusters spread over several machines.

use std::fs;

use anyhow::Context;
use kvctl::certs::{self, Validity};

use crate::cli::CertCommand;

pub fn run(command: CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::Ca(args) => {
            certs::write(&args.out, "ca", &certs::new_ca(Validity::days(args.days))?)?;
            println!(
                "wrote {0}/ca.pem and {0}/ca.key (keep ca.key private)",
                args.out.display()
            );
        }
        CertCommand::Node(args) => {
            let ca = certs::read(&args.ca_dir, "ca").context("reading the CA")?;
            certs::write(
                &args.out,
                "node",
                &certs::new_node(&ca, &args.id, &args.hosts, Validity::days(args.days))?,
            )?;
            fs::write(args.out.join("ca.pem"), &ca.cert)?;
            println!(
                "wrote {0}/node.pem, {0}/node.key and {0}/ca.pem for node {1}",
                args.out.display(),
                args.id
            );
        }
        CertCommand::Client(args) => {
            let ca = certs::read(&args.ca_dir, "ca").context("reading the CA")?;
            let client = certs::new_client(&ca, &args.name, Validity::days(args.days))?;
            certs::write(&args.out, "client", &client)?;
            fs::write(args.out.join("ca.pem"), &ca.cert)?;
            println!(
                "wrote {0}/client.pem, {0}/client.key and {0}/ca.pem",
                args.out.display()
            );
        }
    }
    Ok(())
}
