use kvctl::engine::{Engine, Options, Store, WriteBatch};
fn main() {
    let dir = std::path::Path::new("/work/main/target/getprof");
    let fresh = !dir.exists();
    let e = Engine::open(dir, Options::default()).unwrap();
    let n = 1_000_000u64;
    let key = |i: u64| {
        format!(
            "key{:021}",
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 10u64.pow(21)
        )
        .into_bytes()
    };
    if fresh {
        for c in 0..n / 1000 {
            let mut b = WriteBatch::new();
            for i in c * 1000..(c + 1) * 1000 {
                b.put(key(i), vec![1u8; 150]);
            }
            e.write(b).unwrap();
        }
        e.compact().unwrap();
    }
    let mut x = 1u64;
    let probes: Vec<Vec<u8>> = (0..2_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            key(x % n)
        })
        .collect();
    let start = std::time::Instant::now();
    for k in &probes {
        assert!(e.get(k).unwrap().is_some());
    }
    println!("{:.0} gets/s", 2e6 / start.elapsed().as_secs_f64());
}
