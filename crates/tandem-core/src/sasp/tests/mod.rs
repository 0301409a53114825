mod codec;
mod interop;
mod lb;
