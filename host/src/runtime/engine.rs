//! The Wasmtime engine every plugin runs on, and the clock that stops them.
//!
//! One engine per distinct stack limit (almost always one): Wasmtime fixes
//! `max_wasm_stack` per engine. Each engine uses the pooling allocator so a
//! fresh instance per event costs microseconds, consumes fuel for a
//! deterministic CPU budget, and is interrupted by an epoch that a background
//! thread advances every [`EPOCH_TICK`] for the wall-clock deadline.

use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::Limits;
use super::sandbox::TABLE_ELEMENTS;

/// How often the epoch advances; deadlines are rounded up to it.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Bytes of each linear memory kept mapped between calls: a compiled Rust
/// plugin's whole heap, a fraction of an interpreter's.
const KEEP_RESIDENT: usize = 4 << 20;

/// Bytes of each table kept mapped between calls.
const TABLE_KEEP_RESIDENT: usize = 256 << 10;

/// Builds an engine for plugins whose stack limit is `stack_bytes`.
pub fn build(stack_bytes: u64, ceiling: &Limits) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(256)
        .total_core_instances(2_048)
        .total_memories(512)
        .total_tables(1_024)
        .total_stacks(256)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(32)
        .max_memories_per_module(2)
        .max_tables_per_module(4)
        .table_elements(TABLE_ELEMENTS)
        .max_memory_size(usize::try_from(ceiling.memory_bytes).unwrap_or(usize::MAX))
        .max_core_instance_size(4 << 20)
        .max_component_instance_size(4 << 20)
        // Reset a freed slot in place instead of handing its pages back to
        // the kernel: with madvise every call paid page faults to touch its
        // heap again (and TLB shootdowns), which was 40 % of a Rust plugin's
        // call. PAGEMAP_SCAN (Linux 6.7+) limits the reset to pages the call
        // dirtied; without it, the first KEEP_RESIDENT bytes are reset in place
        // and the rest is decommitted as before.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(usize::try_from(stack_bytes).unwrap_or(usize::MAX))
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    start_ticker(&engine);
    Ok(engine)
}

/// Advances the engine's epoch until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("pagehook-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// Epoch ticks that cover `deadline`.
pub fn ticks(deadline: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos().max(1);
    u64::try_from(deadline.as_nanos().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}
