//! Containers as the user sees them: ps rows and inspect documents (being written).
