//go:build !linux

package loadgen

func noSegmentation() func() { return func() {} }
