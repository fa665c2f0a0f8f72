// `js-fwd`: the floor for any worker gate — a JS worker that only forwards to ASSETS.
export default {
  fetch(request, env) {
    return env.ASSETS.fetch(request);
  },
};
