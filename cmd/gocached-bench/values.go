package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gocached/gocached/bench"
)

func valuesCmd() *cli.Command {
	return &cli.Command{
		Name: "values",
		Usage: "large values side by side: set/get throughput by size, mixed-size set churn, " +
			"clients that never read, slow uploaders",
		Flags: append(serverFlags(64),
			&cli.StringFlag{Name: "parts", Value: "throughput,churn,nonreading,slowupload", Usage: "which parts to run"},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Value: 2 * time.Second, Usage: "each throughput and churn run"},
			&cli.IntFlag{Name: "conns", Aliases: []string{"c"}, Value: 16, Usage: "throughput and churn connections"},
			&cli.IntFlag{Name: "stalled", Value: 200, Usage: "non-reading clients"},
			&cli.IntFlag{Name: "uploaders", Value: 2000, Usage: "slow uploaders"},
			&cli.DurationFlag{Name: "upload-time", Value: 10 * time.Second, Usage: "how long each uploader takes to send its 1,000,000-byte value"},
		),
		Action: func(c *cli.Context) error {
			env := bench.CurrentEnv()
			specs, failed, cleanup, err := servers(c, &env)
			defer cleanup()
			if err != nil {
				return err
			}
			// Room for the slow uploaders' connections on both servers.
			for i := range specs {
				specs[i].Extra = append(specs[i].Extra, "-c", fmt.Sprint(c.Int("uploaders")+c.Int("stalled")+100))
			}
			o := bench.ValuesOptions{Servers: specs, Duration: c.Duration("duration"), Conns: c.Int("conns"),
				Reps: c.Int("reps"), Parts: strings.Split(c.String("parts"), ","), Stalled: c.Int("stalled"),
				Uploaders: c.Int("uploaders"), UploadTime: c.Duration("upload-time"), Log: logw(c), Failed: failed}
			if !c.Bool("quiet") {
				o.Progress = os.Stderr
			}
			rep := bench.Values(c.Context, o)
			rep.Env = env
			rep.Options = map[string]any{"parts": o.Parts, "duration": o.Duration.String(), "conns": o.Conns,
				"reps": o.Reps, "stalled": o.Stalled, "uploaders": o.Uploaders, "upload_time": o.UploadTime.String(),
				"memory_mb": c.Int("memory")}
			fmt.Printf("gocached-bench values  %s  -m %d -t 1, %d reps\n\n", env.Date.Format(time.RFC3339), c.Int("memory"), o.Reps)
			bench.WriteValuesTable(os.Stdout, rep, &o)
			jp := stamp(c.String("out"), "values", ".json")
			if err := bench.WriteJSON(jp, rep); err != nil {
				return err
			}
			fmt.Println("\nwrote", jp)
			return c.Context.Err()
		},
	}
}
