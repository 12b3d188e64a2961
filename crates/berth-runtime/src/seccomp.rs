//! linux.seccomp compiled to BPF and loaded (see the confinement issue).
