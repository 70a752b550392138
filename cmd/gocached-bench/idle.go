package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gocached/gocached/bench"
)

func idleCmd() *cli.Command {
	return &cli.Command{
		Name:  "idle",
		Usage: "open N idle connections to each fresh server; report RSS per connection, and RSS a while after they close",
		Flags: append(serverFlags(64),
			&cli.IntFlag{Name: "conns", Aliases: []string{"c"}, Value: 10000, Usage: "idle connections (the open-file limit is raised to its hard limit)"},
			&cli.DurationFlag{Name: "settle", Value: 5 * time.Second, Usage: "wait after connecting before measuring"},
			&cli.DurationFlag{Name: "after", Value: 30 * time.Second, Usage: "wait after closing them before measuring again"},
		),
		Action: func(c *cli.Context) error {
			limit, err := bench.RaiseFileLimit()
			if err != nil {
				return fmt.Errorf("raise the open-file limit: %w", err)
			}
			n := c.Int("conns")
			if uint64(n)+256 > limit {
				return fmt.Errorf("%d connections need more open files than the limit %d allows", n, limit)
			}
			env := bench.CurrentEnv()
			specs, failed, cleanup, err := servers(c, &env)
			defer cleanup()
			if err != nil {
				return err
			}
			o := bench.IdleOptions{Servers: specs, Conns: n, Settle: c.Duration("settle"), After: c.Duration("after"),
				Reps: c.Int("reps"), Log: logw(c), Failed: failed}
			rep := bench.Idle(c.Context, o)
			fillVersions(&env, rep.Runs)
			rep.Env = env
			rep.Options = map[string]any{"conns": n, "settle": o.Settle.String(), "after": o.After.String(),
				"memory_mb": c.Int("memory"), "reps": o.Reps}
			fmt.Printf("gocached-bench idle  %s  %d idle connections (one version each), -m %d\n\n", env.Date.Format(time.RFC3339), n, c.Int("memory"))
			bench.WriteIdleTable(os.Stdout, rep, o.After)
			jp := stamp(c.String("out"), "idle", ".json")
			if err := bench.WriteJSON(jp, rep); err != nil {
				return err
			}
			fmt.Println("\nwrote", jp)
			return c.Context.Err()
		},
	}
}
