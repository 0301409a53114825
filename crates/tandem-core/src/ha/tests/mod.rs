mod codec;
mod fuzz;
mod harness;
mod scenarios;
mod sweep;
