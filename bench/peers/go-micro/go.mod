module zsync-bench/gomicro

go 1.19
