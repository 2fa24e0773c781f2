//! `marginloss plot`: losses against their scalar input.
use clap::Args;
use crate::fail::Fail;
#[derive(Args, Debug)]
pub struct PlotArgs {
    pub losses: Vec<String>,
}
pub fn run(_a: &PlotArgs) -> Result<(), Fail> { Ok(()) }
