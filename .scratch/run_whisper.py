import time, sys, resource
import brainlike
from brainlike.data.stimuli import load_stimulus_set
from brainlike.extract.frames import extract_frames
from brainlike.models.registry import load_model
model = sys.argv[1]
t = time.time()
frames = extract_frames(load_model(model), load_stimulus_set("natsound165"), rate=25.0, pre=0.5, stop=3.0, progress=False)
print("extract", model, time.time() - t, "peak MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flush=True)
t = time.time()
res = brainlike.score(model, dataset="ecog-nh2022", protocol="trf", progress=False, metric="regression")
print("trf", time.time() - t, flush=True)
for r in res:
    if r["target"] == "all": print(r)
