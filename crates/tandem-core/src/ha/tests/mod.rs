mod bundle_pair;
mod codec;
mod faults;
mod fuzz;
mod harness;
mod scenarios;
mod sweep;
