//! TEMPORARY probe (removed after measuring): cost of Store::append_inbox per group size.
use std::time::Instant;
use store::inbox::InboxAppend;

pub async fn run(url: &str) -> anyhow::Result<()> {
    let store = store::Store::connect(url).await?;
    store.migrate().await?;
    let mut n = 0u64;
    for group in [1usize, 8, 32, 128] {
        let rounds = 4000 / group;
        let t = Instant::now();
        for _ in 0..rounds {
            let items: Vec<InboxAppend> = (0..group).map(|_| {
                n += 1;
                let body = format!("{n:0>537}").into_bytes();
                InboxAppend { sha256_hex: format!("{n:064x}"), body, dead_reason: None }
            }).collect();
            store.append_inbox(&items).await?;
        }
        let e = t.elapsed();
        eprintln!("{url}: group {group}: {:.0} us/commit, {:.1} us/row, {:.0} rows/s", e.as_micros() as f64 / rounds as f64, e.as_micros() as f64 / (rounds*group) as f64, (rounds*group) as f64 / e.as_secs_f64());
    }
    store.close().await;
    Ok(())
}
