# The gateway image of compose.yaml: gunicorn serving gateway.wsgi:app.
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir . && useradd --system opacgw
USER opacgw
EXPOSE 8080
CMD ["gunicorn", "gateway.wsgi:app", "--config", "python:gateway.gunicorn_conf", "--bind", "0.0.0.0:8080"]
