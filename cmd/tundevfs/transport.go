package main

import "github.com/tundevfs/tundevfs/daemon"

// transportFlag is the --fuse-transport flag: auto, uring or dev.
type transportFlag struct{ t *daemon.FuseTransport }

func (f transportFlag) String() string {
	if f.t == nil || *f.t == "" {
		return ""
	}
	return string(*f.t)
}

func (f transportFlag) Set(s string) error {
	t, err := daemon.ParseFuseTransport(s)
	if err != nil {
		return err
	}
	*f.t = t
	return nil
}

func (f transportFlag) Type() string { return "auto|uring|dev" }
