//! Container specs: image config plus run options into an OCI runtime spec (being written).
