// Command ntasks runs a shell command N times on a corral cluster and prints
// how each copy ended. Exit status: 0 when all finished, 1 when any failed,
// 2 on bad flags or when the framework could not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/sdk/examples/ntasks"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

func main() {
	var cfg ntasks.Config
	master := os.Getenv("CORRAL_MASTER")
	if master == "" {
		master = "127.0.0.1:5050"
	}
	flag.StringVar(&cfg.Master, "master", master, "master address host:port (env CORRAL_MASTER)")
	flag.StringVar(&cfg.Name, "name", "ntasks", "framework name, also the task ID prefix")
	flag.StringVar(&cfg.Role, "role", "*", "role to subscribe with")
	flag.IntVar(&cfg.Tasks, "tasks", 3, "number of tasks")
	flag.StringVar(&cfg.Command, "command", "echo hello from $HOSTNAME", "shell command each task runs")
	flag.Float64Var(&cfg.CPUs, "cpus", 0.1, "CPUs per task")
	flag.Float64Var(&cfg.Mem, "mem", 32, "memory per task, MiB")
	level := flag.String("log-level", "info", "log level: trace, debug, info, warn, error")
	execPath := flag.String("executor", "", "run the tasks on this custom executor (e.g. bin/customexec; a path on the agents) instead of the command executor")
	execCPUs := flag.Float64("executor-cpus", 0.1, "the custom executor's own CPUs")
	execMem := flag.Float64("executor-mem", 64, "the custom executor's own memory, MiB")
	flag.Parse()
	if *execPath != "" {
		cfg.Executor = &corralpb.ExecutorInfo{ExecutorId: cfg.Name + "-executor", Name: cfg.Name + " executor",
			Command: &corralpb.CommandInfo{Value: *execPath},
			Resources: []*corralpb.Resource{
				{Name: "cpus", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: *execCPUs}},
				{Name: "mem", Role: "*", Value: &corralpb.Resource_Scalar{Scalar: *execMem}},
			}}
	}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "ntasks", Level: hclog.LevelFromString(*level), Output: os.Stderr})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := ntasks.Run(ctx, cfg)
	ids := make([]string, 0, len(res.Statuses))
	for id := range res.Statuses {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Printf("%s\t%s\n", id, res.Statuses[id])
	}
	fmt.Printf("finished %d, failed %d, updates %d, acks %d\n", res.Finished, res.Failed, res.UpdatesReceived, res.AcksSent)
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "ntasks:", err)
		os.Exit(2)
	case res.Failed > 0:
		os.Exit(1)
	}
}
