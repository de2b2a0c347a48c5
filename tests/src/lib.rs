//! End-to-end tests of FrameDB over real HTTP; they live in `e2e/`.
