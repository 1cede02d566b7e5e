//! Tokio TCP echo peer for bench/echo: one task per connection, read into a
//! 4 KiB buffer and write_all it back, until EOF or error.
//! Env: PORT (default 8092), listens on 127.0.0.1:$PORT; WORKERS (default 1):
//! 1 = current_thread runtime, N > 1 = multi_thread runtime with N workers.
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BUF: usize = 4096;

async fn serve(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn main() {
    let port: u16 = match std::env::var("PORT") {
        Ok(v) => v.parse().expect("bad PORT"),
        Err(_) => 8092,
    };
    let workers: usize = match std::env::var("WORKERS") {
        Ok(v) => v.parse().expect("bad WORKERS"),
        Err(_) => 1,
    };
    let rt = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
    }
    .expect("runtime");
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(serve(s));
                }
                Err(e) => {
                    // e.g. EMFILE: report, back off briefly, keep accepting
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
}
