//! Kernels: what a test runs on, from its definition to a built image.
//!
//! Bottom to top (a module imports only those above it in this list):
//! * [`cell`]: kernel cells, the compilers and flavours (`guest-image/cells.toml`);
//! * [`kconfig`]: fragment merging and the requested-vs-resolved check;
//! * [`image`]: a prebuilt kernel as found on disk (`--kernel`);
//! * [`spec`]: kernels (`guest-image/kernels.toml`) and targets (kernel x cell);
//! * [`packages`]: every Debian package hidvm needs;
//! * [`lockfile`]: `guest-image/kernels.lock`, the exact Debian source of each kernel;
//! * [`debian`]: Debian source packages, fetched without installing anything;
//! * [`patches`]: patch series, tree copies and the build tree's sync;
//! * [`source`]: a kernel's tree (a Debian tarball, or the user's) and its workspace;
//! * [`toolfloor`]: the oldest compiler and pahole a tree accepts;
//! * [`ccache`]: the compiler cache kernel builds use;
//! * [`build`]: per-cell cached kernel builds;
//! * [`prebuilt`]: a prebuilt kernel made ready to boot.
pub mod build;
pub mod ccache;
pub mod cell;
pub mod debian;
pub mod image;
pub mod kconfig;
pub mod lockfile;
pub mod packages;
pub mod patches;
pub mod prebuilt;
pub mod source;
pub mod spec;
pub mod toolfloor;
