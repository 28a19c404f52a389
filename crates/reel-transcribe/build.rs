//! Links Debian's PocketSphinx (`libpocketsphinx-dev`, which brings `libsphinxbase-dev`).
fn main() {
    println!("cargo:rustc-link-lib=pocketsphinx");
    println!("cargo:rustc-link-lib=sphinxbase");
}
