package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

// runVersion prints what the binary was built from: the module's version
// and the Go version and version control information the build recorded,
// one per line ("unknown" where the build recorded nothing, such as a
// build outside a repository).
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("version", stderr)
	if err := f.parse(args, 0); err != nil {
		return err
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Errorf("the binary holds no build information")
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	or := func(v string) string {
		if v == "" {
			return "unknown"
		}
		return v
	}
	_, err := fmt.Fprintf(stdout, "%s %s\ngo %s\nvcs.revision %s\nvcs.time %s\nvcs.modified %s\n",
		or(info.Main.Path), or(info.Main.Version), info.GoVersion,
		or(settings["vcs.revision"]), or(settings["vcs.time"]), or(settings["vcs.modified"]))
	return err
}
