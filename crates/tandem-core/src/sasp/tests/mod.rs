mod codec;
mod lb;
