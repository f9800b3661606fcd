# One image for the three services and licensectl (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY shared ./shared
COPY services ./services
COPY licensectl ./licensectl
COPY samples ./samples
RUN pip install --no-cache-dir -c constraints.txt .
