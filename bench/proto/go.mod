module github.com/seawall/seawall/bench/proto

go 1.26.8

require (
	github.com/lesismal/nbio v1.6.8
	github.com/seawall/seawall v0.0.0
	github.com/valyala/fasthttp v1.69.0
)

require (
	github.com/andybalholm/brotli v1.2.0 // indirect
	github.com/klauspost/compress v1.18.2 // indirect
	github.com/lesismal/llib v1.2.2 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	golang.org/x/crypto v0.46.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/seawall/seawall => ../..
