//! `kvctl cert ca|node|client`: certificates for clusters spread over several machines.

use std::fs;

use anyhow::Context;
use kvctl::model::context::{ClusterSecret, SECRET_FILE};
use kvctl::wire::certs::{self, Validity};

use crate::cli::CertCommand;

pub fn run(command: CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::Ca(args) => {
            certs::write(&args.out, "ca", &certs::new_ca(Validity::days(args.days))?)?;
            ClusterSecret::create(&args.out.join(SECRET_FILE))?;
            println!(
                "wrote {0}/ca.pem, {0}/ca.key and {0}/{SECRET_FILE} (keep ca.key and \
                 {SECRET_FILE} private: nodes only)",
                args.out.display()
            );
        }
        CertCommand::Node(args) => {
            let ca = certs::read(&args.ca_dir, "ca").context("reading the CA")?;
            let id = match &args.id {
                Some(id) => id.clone(),
                None => format!("node-{:08x}", rand::random::<u32>()),
            };
            certs::write(
                &args.out,
                "node",
                &certs::new_node(&ca, &id, &args.hosts, Validity::days(args.days))?,
            )?;
            fs::write(args.out.join("ca.pem"), &ca.cert)?;
            let secret = args.ca_dir.join(SECRET_FILE);
            if !secret.exists() {
                // A CA made by an earlier kvctl: the cluster gets its secret now.
                ClusterSecret::create(&secret)?;
                println!("made the cluster secret {}", secret.display());
            }
            ClusterSecret::copy(&secret, &args.out.join(SECRET_FILE))?;
            println!(
                "wrote {0}/node.pem, {0}/node.key, {0}/ca.pem and {0}/{SECRET_FILE} for node {1}",
                args.out.display(),
                id
            );
        }
        CertCommand::Client(args) => {
            let ca = certs::read(&args.ca_dir, "ca").context("reading the CA")?;
            let validity = Validity::days(args.days);
            let client = certs::new_client(&ca, &args.name, args.role, validity)?;
            certs::write(&args.out, "client", &client)?;
            fs::write(args.out.join("ca.pem"), &ca.cert)?;
            println!(
                "wrote {0}/client.pem, {0}/client.key and {0}/ca.pem (role {1})",
                args.out.display(),
                args.role
            );
        }
    }
    Ok(())
}
