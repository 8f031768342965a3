//! The BPF backend's machine layer: instruction encoding, disassembly, and ELF object writing.
