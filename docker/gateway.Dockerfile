# syntax=docker/dockerfile:1.7
# The gateway (Knative Service "arca"): stock unprivileged nginx; its configuration is the
# ConfigMap generated from knative/base/ingress/gateway.conf, mounted at /etc/arca-gateway.
#   docker build -f docker/gateway.Dockerfile -t kind.local/arca-gateway:TAG .
FROM nginxinc/nginx-unprivileged:1.28.0-alpine AS gateway
USER 101:101
EXPOSE 8080
ENTRYPOINT ["nginx"]
CMD ["-c", "/etc/arca-gateway/nginx.conf", "-g", "daemon off;"]
