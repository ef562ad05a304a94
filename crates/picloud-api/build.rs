// The dashboard's build is embedded (`src/dashboard.rs`): rebuild when any of it changes,
// files added or removed included.
fn main() {
    println!("cargo:rerun-if-changed=../../dashboard/dist");
}
