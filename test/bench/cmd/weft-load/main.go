// Command weft-load is the benchmark suite's open-loop load generator and
// test backend (package test/bench/load).
//
//	weft-load run   --proto http1|h2|grpc|tcp|tcp-new --target HOST:PORT[,HOST:PORT...] \
//	                [--rate RPS (0: closed loop)] [--conns N] [--duration D] [--warmup D]
//	weft-load serve [--http HOST:PORT] [--grpc HOST:PORT] [--tcp HOST:PORT]
//	weft-load idle  --target HOST:PORT --conns N [--proto http1|tcp]
//
// run prints one JSON result on stdout. serve prints "ready" once every
// listener is bound. idle opens N keep-alive HTTP/1.1 connections (or TCP
// connections), makes one request (or echo) on each, prints "ready", and holds them until stdin closes or a
// signal arrives.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftmesh/weft/test/bench/load"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: weft-load run|serve|idle [flags]; weft-load <command> -h for flags")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "idle":
		err = idle(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q; want run, serve or idle", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var c load.Config
	fs.StringVar(&c.Proto, "proto", "http1", "http1, h2, grpc, tcp or tcp-new")
	fs.StringVar(&c.Target, "target", "", "host:port to load, or several separated by commas (connection i goes to the (i mod n)th)")
	fs.Float64Var(&c.Rate, "rate", 1000, "requests per second over all connections; 0 runs closed loop (maximum throughput)")
	fs.IntVar(&c.Conns, "conns", 16, "connections, one request in flight on each")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "time before the measurement, not recorded")
	fs.StringVar(&c.Path, "path", "/1k", "HTTP path")
	fs.IntVar(&c.MsgSize, "msg-size", 64, "TCP echo message size in bytes")
	fs.Parse(args)
	if c.Target == "" {
		return fmt.Errorf("run: --target is required")
	}
	r, err := load.Run(ctx, c)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	var o load.ServeOptions
	fs.StringVar(&o.HTTP, "http", "", "address of the HTTP/1.1 + h2c server (GET /1k: 1024 bytes)")
	fs.StringVar(&o.GRPC, "grpc", "", "address of the gRPC health server")
	fs.StringVar(&o.TCP, "tcp", "", "address of the TCP echo server")
	fs.Parse(args)
	return load.Serve(ctx, o, func() { fmt.Println("ready") })
}

func idle(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	target := fs.String("target", "", "host:port of an HTTP/1.1 server or proxy")
	n := fs.Int("conns", 1000, "keep-alive connections to hold")
	proto := fs.String("proto", "http1", "http1 (one request each) or tcp (one 64-byte echo each)")
	fs.Parse(args)
	hold := load.HoldIdle
	if *proto == "tcp" {
		hold = load.HoldIdleTCP
	}
	closeAll, err := hold(*target, *n)
	if err != nil {
		return err
	}
	defer closeAll()
	fmt.Println("ready")
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-ctx.Done():
	case <-eof:
	}
	return nil
}
