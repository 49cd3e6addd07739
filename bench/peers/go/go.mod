module zsync-bench/gohttp

go 1.19
