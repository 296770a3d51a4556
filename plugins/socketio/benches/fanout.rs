//! Fan-out benchmark: the socketio plugin in the real host against npm socket.io (work in progress).

fn main() {}
