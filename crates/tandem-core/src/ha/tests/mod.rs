mod bundle_pair;
mod codec;
mod faults;
mod fuzz;
mod harness;
mod partner_lost;
mod scenarios;
mod sweep;
