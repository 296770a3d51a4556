//! Fan-out benchmark: the mqtt plugin in the real host against mosquitto (work in progress).

fn main() {}
