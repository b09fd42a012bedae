// Command mesossim runs the Mesos master simulator of test/mesossim on
// loopback, for trying the Mesos adapter and the example framework
// without a Mesos cluster:
//
//	go run ./test/mesossim/cmd/mesossim --masters 127.0.0.1:5050,127.0.0.1:5051
//
// It prints each master's URL, runs until SIGINT or SIGTERM, and then
// kills every task it started. Send SIGUSR1 to move the leadership to the
// next master (a failover).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/test/mesossim"
)

func main() {
	var (
		masters   = flag.String("masters", "127.0.0.1:5050", "loopback host:port of each master, comma-separated; the first leads")
		agents    = flag.Int("agents", 1, "number of agents")
		user      = flag.String("user", "", "require HTTP Basic auth with this user")
		password  = flag.String("password", "", "the password for --user")
		heartbeat = flag.Duration("heartbeat", 15*time.Second, "interval between HEARTBEAT events")
		recovery  = flag.Duration("recovery", 0, "how long a new leader answers 503")
		workDir   = flag.String("work-dir", "", "where task sandboxes go (default: a temporary directory)")
	)
	flag.Parse()
	log.SetPrefix("mesossim: ")
	addrs := strings.Split(*masters, ",")
	c, err := mesossim.Start(mesossim.Options{
		Masters: len(addrs), MasterAddrs: addrs, Agents: *agents, User: *user, Password: *password,
		HeartbeatInterval: *heartbeat, RecoveryPeriod: *recovery, WorkDir: *workDir, Logf: log.Printf,
	})
	if err != nil {
		log.Fatal(err)
	}
	for i, u := range c.URLs() {
		fmt.Printf("master %d: %s\n", i, u)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	for s := range sig {
		if s == syscall.SIGUSR1 {
			if err := c.SetLeader((c.Leader() + 1) % len(addrs)); err != nil {
				log.Print(err)
			}
			continue
		}
		break
	}
	c.Close()
}
