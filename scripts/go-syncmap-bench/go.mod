module isokv/go-syncmap-bench

go 1.19
