mod codec;
mod harness;
mod scenarios;
mod sweep;
