//! Data-parallel training: the collective operations the trainer needs, and the process
//! group a command runs in.
//!
//! A training step's global batch of `batch_size` samples is cut into
//! `micro_batches` equal parts ([`BatchSlot`](crate::BatchSlot)); with `P` processes,
//! process `r` computes parts `r·M/P … (r+1)·M/P − 1` one after another, adding their
//! gradients, and one all-reduce per step sums them over the processes. Each part draws
//! its random views and masks from its own generator (`step-s` forked by `part-m`; the
//! undivided batch keeps `step-s` itself), and takes the samples at positions
//! `(s−1)·B + m·B/M …` of the epoch order. So the data and every random draw are a pure
//! function of the seed, the global step and `micro_batches`, never of the number of
//! processes: a run resumed with another process count (one that divides
//! `micro_batches`) continues exactly, up to the order of floating-point sums.
//!
//! [`world`] gives the group: one process ([`Single`]) unless the command was launched by
//! `mpirun`, where a binary built with the `mpi` feature joins `MPI_COMM_WORLD`.

use crate::{Result, TrainError};

/// The collective operations of a group of processes that train one model.
pub trait Collective {
    /// This process's index in `0..size()`.
    fn rank(&self) -> usize;
    /// How many processes train together.
    fn size(&self) -> usize;
    /// Replaces `buf` by its element-wise sum over the processes, on every process.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// As [`Collective::all_reduce_sum`], for the step's scalars (loss, metrics, counts).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Ends every process of the group at once after this one hit an error it has already
    /// reported, so no process waits forever on a collective the failed one never joins.
    /// One process has nothing to do.
    fn abort(&self, _code: i32) {}
}

/// One process alone: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }
}

/// A group of `size` trainers in one process, one thread each: data-parallel training
/// without MPI, with sums taken in rank order (so two members add exactly as one
/// process adding its two micro-batches does). For tests, and to try a configuration.
pub struct ThreadGroup {
    rank: usize,
    size: usize,
    shared: std::sync::Arc<Shared>,
}

struct Shared {
    barrier: std::sync::Barrier,
    f32s: std::sync::Mutex<Vec<f32>>,
    f64s: std::sync::Mutex<Vec<f64>>,
}

impl ThreadGroup {
    /// The `size` members, rank 0 first; give one to each thread.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let shared = std::sync::Arc::new(Shared {
            barrier: std::sync::Barrier::new(size),
            f32s: Default::default(),
            f64s: Default::default(),
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                size,
                shared: shared.clone(),
            })
            .collect()
    }

    fn reduce<T: Copy + std::ops::AddAssign>(
        &self,
        acc: &std::sync::Mutex<Vec<T>>,
        buf: &mut [T],
    ) -> Result<()> {
        let poisoned = |_| TrainError::Config("a member of the thread group panicked".into());
        for r in 0..self.size {
            if r == self.rank {
                let mut a = acc.lock().map_err(poisoned)?;
                if r == 0 {
                    *a = buf.to_vec();
                } else if a.len() != buf.len() {
                    return Err(TrainError::Config(format!(
                        "all-reduce of {} values on rank {r}, {} on rank 0",
                        buf.len(),
                        a.len()
                    )));
                } else {
                    a.iter_mut().zip(buf.iter()).for_each(|(x, y)| *x += *y);
                }
            }
            self.shared.barrier.wait();
        }
        buf.copy_from_slice(&acc.lock().map_err(poisoned)?);
        self.shared.barrier.wait();
        Ok(())
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        self.reduce(&self.shared.f32s, buf)
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.reduce(&self.shared.f64s, buf)
    }
}

/// The number of processes `mpirun` (OpenMPI, or another launcher following the PMI
/// conventions) started this one among, or `None` outside a launcher.
pub fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .and_then(|s| s.trim().parse().ok())
}

/// This process's rank and the process count under a launcher (`mpirun`: OpenMPI's or
/// PMI's environment variables), `(0, 1)` outside one. For work that needs no
/// communication, such as embedding every `size`-th part of a file list.
pub fn launched_rank() -> (usize, usize) {
    let size = launched_size().unwrap_or(1).max(1);
    let rank = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    (rank.min(size - 1), size)
}

/// The process group of this command: MPI's world when launched by `mpirun` (and built
/// with the `mpi` feature), else [`Single`]. MPI is finalised when the returned value is
/// dropped, and can be joined once per process.
pub fn world() -> Result<Box<dyn Collective>> {
    let Some(size) = launched_size() else {
        return Ok(Box::new(Single));
    };
    #[cfg(feature = "mpi")]
    {
        let _ = size;
        mpi_world::Mpi::join().map(|m| Box::new(m) as Box<dyn Collective>)
    }
    #[cfg(not(feature = "mpi"))]
    {
        if size > 1 {
            return Err(TrainError::Config(format!(
                "launched by mpirun with {size} processes, but this binary was built without \
                 data-parallel training: rebuild it with `--features mpi` (needs Debian's \
                 libopenmpi-dev and libclang-dev)"
            )));
        }
        Ok(Box::new(Single))
    }
}

#[cfg(feature = "mpi")]
mod mpi_world {
    use super::*;
    use mpi::collective::SystemOperation;
    use mpi::traits::{Communicator, CommunicatorCollectives};

    /// `MPI_COMM_WORLD`; finalised on drop.
    pub struct Mpi {
        universe: mpi::environment::Universe,
    }

    impl Mpi {
        pub fn join() -> Result<Self> {
            // The trainer calls MPI from the main thread only; rayon's workers never do.
            let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
                .ok_or_else(|| {
                    TrainError::Config(
                        "MPI was already initialised in this process (one training command \
                         per process under mpirun)"
                            .into(),
                    )
                })?;
            Ok(Self { universe })
        }

        fn sum<T: mpi::datatype::Equivalence + Copy>(&self, buf: &mut [T]) -> Result<()> {
            let send = buf.to_vec();
            self.universe
                .world()
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
            Ok(())
        }
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.universe.world().rank() as usize
        }
        fn size(&self) -> usize {
            self.universe.world().size() as usize
        }
        fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            self.sum(buf)
        }
        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            self.sum(buf)
        }
        fn abort(&self, code: i32) {
            self.universe.world().abort(code)
        }
    }
}
