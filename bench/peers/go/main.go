// Go peer: net/http hello server (GET / -> "Hello, World!").
//
//	go build -o go-http . && ./go-http --addr 127.0.0.1:8080 --workers 2
package main

import (
	"flag"
	"log"
	"net/http"
	"runtime"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	workers := flag.Int("workers", 0, "GOMAXPROCS (0: leave as is)")
	flag.Parse()
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}
	body := []byte("Hello, World!")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
