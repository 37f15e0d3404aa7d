// etl_twin_go: a Go twin of troupe's ETL (config/etl.yaml), the baseline of
// troupe-bench's etl group, written in the seed's Go patterns as a Go
// engineer would write it for speed: a generator goroutine, a worker pool of
// goroutines ranging over a jobs channel (sync.WaitGroup, then close), and an
// ordered writer that puts batches back in sequence through a 1 MiB
// bufio.Writer. Records travel in batches of 256 over the channels.
//
// Output, one line per record, byte-identical to troupe's etl.jsonl and to
// troupe-etl-loop's:
//
//	{"seq":N,"key":"","body":"<sha256 hex of raw_N>","attrs":{}}
//
// Usage: etl_twin_go -count N -out PATH [-workers W]
// troupe-bench builds it at run time with `go build` (standard library only).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
)

const batchSize = 256

type record struct {
	seq  uint64
	raw  string
	body [sha256.Size * 2]byte // hex digest
}

// batch is the unit on the channels; id orders batches for the writer.
type batch struct {
	id      uint64
	records []record
}

// generate sends batches of records raw_0..raw_{n-1}, then closes jobs.
func generate(n uint64, jobs chan<- *batch) {
	defer close(jobs)
	var id uint64
	for start := uint64(0); start < n; start += batchSize {
		end := start + batchSize
		if end > n {
			end = n
		}
		b := &batch{id: id, records: make([]record, 0, end-start)}
		for i := start; i < end; i++ {
			b.records = append(b.records,
				record{seq: i, raw: "raw_" + strconv.FormatUint(i, 10)})
		}
		jobs <- b
		id++
	}
}

// workerPool hashes each record of each batch on `workers` goroutines and
// closes results once every worker is done.
func workerPool(jobs <-chan *batch, results chan<- *batch, workers int) {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				for k := range b.records {
					r := &b.records[k]
					sum := sha256.Sum256([]byte(r.raw))
					hex.Encode(r.body[:], sum[:])
				}
				results <- b
			}
		}()
	}
	wg.Wait()
	close(results)
}

// writeOrdered writes batches in id order; batches that arrive early wait in
// a map (bounded by what is in flight: the channels and the workers).
func writeOrdered(results <-chan *batch, w *bufio.Writer) error {
	pending := make(map[uint64]*batch)
	var next uint64
	var num []byte
	for b := range results {
		pending[b.id] = b
		for {
			nb, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			for k := range nb.records {
				r := &nb.records[k]
				w.WriteString(`{"seq":`)
				num = strconv.AppendUint(num[:0], r.seq, 10)
				w.Write(num)
				w.WriteString(`,"key":"","body":"`)
				w.Write(r.body[:])
				if _, err := w.WriteString("\",\"attrs\":{}}\n"); err != nil {
					return err
				}
			}
		}
	}
	if len(pending) != 0 {
		return fmt.Errorf("%d batches never written", len(pending))
	}
	return w.Flush()
}

func main() {
	count := flag.Uint64("count", 1000, "records to generate")
	out := flag.String("out", "", "output file (jsonl)")
	workers := flag.Int("workers", runtime.NumCPU(), "hashing goroutines")
	flag.Parse()
	if *out == "" || *workers < 1 {
		fmt.Fprintln(os.Stderr, "usage: etl_twin_go -count N -out PATH [-workers W]")
		os.Exit(2)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etl_twin_go:", err)
		os.Exit(1)
	}
	jobs := make(chan *batch, 2*(*workers))
	results := make(chan *batch, 2*(*workers))
	go generate(*count, jobs)
	go workerPool(jobs, results, *workers)
	err = writeOrdered(results, bufio.NewWriterSize(f, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "etl_twin_go:", err)
		os.Exit(1)
	}
}
