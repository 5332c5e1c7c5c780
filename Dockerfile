# fleproxy: a small, non-root image of the single binary.
# pg_query_go (the PostgreSQL parser) needs cgo, so the binary links against glibc.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/fleproxy ./cmd/fleproxy

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/fleproxy /usr/local/bin/fleproxy
USER nonroot:nonroot
EXPOSE 6432
ENTRYPOINT ["/usr/local/bin/fleproxy"]
CMD ["serve", "--config", "/etc/fleproxy/fleproxy.yaml"]
