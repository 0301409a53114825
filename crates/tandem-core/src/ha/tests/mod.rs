mod codec;
mod faults;
mod fuzz;
mod harness;
mod mutual;
mod scenarios;
mod sweep;
