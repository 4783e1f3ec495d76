# JupyterLab for the PM2.5 tutorial: the docker-stacks minimal image plus requirements.txt.
# Built by docker-compose.yml; the notebooks themselves are bind-mounted, not copied.

# docker-stacks builds on Python 3.13 since 2025-08-15; a python-3.13.N tag moves only while
# its builds still get that patch release of Python, then names the last one (amd64 and arm64).
# CI's stack job runs the notebooks in this image; the unit tests run on Python 3.11, the oldest
# Python the tutorial supports. Every pinned requirement has a cp313 wheel for both platforms.
FROM quay.io/jupyter/minimal-notebook:python-3.13.14

# Everything below runs as the base image's notebook user jovyan (uid 1000), never as root:
# pip writes into the conda env that jovyan owns.

# Mount points for ./src and ./data, created by jovyan so they are writable without the mounts too.
RUN mkdir -p "/home/${NB_USER}/work/src" "/home/${NB_USER}/work/data"

# The server's root folder is the tutorial's folder, so the notebooks' links to ../README.md and ../img
# open inside JupyterLab.
WORKDIR /home/${NB_USER}/work

# The same pinned requirements that `make test` installs in CI.
COPY --chown=${NB_UID}:${NB_GID} requirements.txt requirements.txt

# No pip cache in the layer; fix-permissions keeps the env usable for any uid in group users.
RUN pip install --no-cache-dir --requirement requirements.txt && \
    fix-permissions "${CONDA_DIR}" && \
    fix-permissions "/home/${NB_USER}"

# The package in editable mode, as `make install` installs it (its dependencies: requirements.txt, above).
# The install points at work/src, where the bind mount puts this folder's src/ at run time: the notebooks
# import the package being edited, from any folder, without PYTHONPATH.
COPY --chown=${NB_UID}:${NB_GID} pyproject.toml pyproject.toml
COPY --chown=${NB_UID}:${NB_GID} src/pm25 src/pm25
RUN pip install --no-cache-dir --no-deps --editable . && \
    fix-permissions "${CONDA_DIR}"

# JupyterLab (not the classic notebook); the token comes from JUPYTER_TOKEN and stays required.
ENV DOCKER_STACKS_JUPYTER_CMD=lab

# The server opens on step 1.
CMD ["start-notebook.py", "--LabApp.default_url=/lab/tree/src/step_1_data_prep.ipynb"]

# Healthy once the running server answers on its own /api (the base image's script, brisker timing).
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=5 \
    CMD ["/etc/jupyter/docker_healthcheck.py"]
