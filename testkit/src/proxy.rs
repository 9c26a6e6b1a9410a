//! A TCP proxy of the tests' own on 127.0.0.1, between a standby and its
//! primary (or a client and a server), that can be cut: a network partition
//! of one link, with both ends alive.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Forwards connections on its port to `127.0.0.1:target`, until cut.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    cut: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// Starts forwarding to `127.0.0.1:target`.
    ///
    /// # Panics
    /// No port can be bound.
    #[must_use]
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the proxy");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(State::default());
        let accepting = Arc::clone(&state);
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                if accepting.cut.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                };
                let mut open = accepting.open.lock().unwrap();
                for stream in [&inbound, &outbound] {
                    if let Ok(stream) = stream.try_clone() {
                        open.push(stream);
                    }
                }
                pipe(&inbound, &outbound);
                pipe(&outbound, &inbound);
            }
        });
        Self { port, state }
    }

    /// Where to connect instead of the target.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts the link: every connection through it is closed, and new ones
    /// are refused, until [`Proxy::restore`].
    ///
    /// # Panics
    /// A forwarding thread panicked.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for stream in self.state.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` on a thread of its own until either closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { return };
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
