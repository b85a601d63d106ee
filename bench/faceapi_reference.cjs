// Reference outputs of @vladmandic/face-api 1.7.15 (TensorFlow.js, cpu backend) for skface's parity tests.
//
//   node bench/faceapi_reference.cjs <net> <model dir> <input.f32> <output.json>
//
// <input.f32>: raw little-endian float32 RGB pixels in [0, 255], NHWC, with its shape in
// <input.f32>.json ({"shape": [n, h, w, 3]}). <net>: recognition | age_gender | landmark68 |
// tiny_face_detector | tiny_face_detector_detect | ssd_mobilenetv1. Each image goes through the package's own forwardInput
// (its preprocessing included), one at a time; the raw network outputs are written as JSON
// {"<output>": {"shape": [...], "data": [...]}, "ms_per_image": ...}.
// Needs node >= 18 with @tensorflow/tfjs 4.22.0 and the face-api package installed beside it
// (bench/faceapi_parity.py sets that up under a scratch folder; nothing here is committed).
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const MODELS = {
  recognition: ['face_recognition_model', () => faceapi.nets.faceRecognitionNet],
  age_gender: ['age_gender_model', () => faceapi.nets.ageGenderNet],
  landmark68: ['face_landmark_68_model', () => faceapi.nets.faceLandmark68Net],
  tiny_face_detector: ['tiny_face_detector_model', () => faceapi.nets.tinyFaceDetector],
  // The package's whole detection (pad, resize to 416, decode, threshold 0.5, NMS 0.4) on any size.
  tiny_face_detector_detect: ['tiny_face_detector_model', () => faceapi.nets.tinyFaceDetector],
  ssd_mobilenetv1: ['ssd_mobilenetv1_model', () => faceapi.nets.ssdMobilenetv1],
};

function loadNet(name, modelDir) {
  const [file, get] = MODELS[name];
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, `${file}-weights_manifest.json`)));
  const buffers = manifest.flatMap((group) => group.paths.map((p) => fs.readFileSync(path.join(modelDir, p))));
  const all = Buffer.concat(buffers);
  const weights = manifest.flatMap((group) => group.weights);
  const map = tf.io.decodeWeights(all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength), weights);
  const net = get();
  net.loadFromWeightMap(map);
  return net;
}

async function outputsOf(name, net, image) {
  const input = await faceapi.toNetInput(image);
  if (name === 'recognition' || name === 'landmark68') {
    return { output: net.forwardInput(input) };
  }
  if (name === 'age_gender') {
    const { age, gender } = net.forwardInput(input);
    return { age, gender };
  }
  if (name === 'tiny_face_detector') {
    return { grid: net.forwardInput(input, image.shape[0]) };
  }
  if (name === 'tiny_face_detector_detect') {
    // Up to 32 faces as rows x0, y0, x1, y1, score in pixels; -1 rows pad the rest.
    const dets = await net.locateFaces(input, new faceapi.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: 0.5 }));
    const rows = dets.slice(0, 32).map((d) => [d.box.x, d.box.y, d.box.x + d.box.width, d.box.y + d.box.height, d.score]);
    while (rows.length < 32) rows.push([-1, -1, -1, -1, -1]);
    return { detections: tf.tensor2d(rows) };
  }
  if (name === 'ssd_mobilenetv1') {
    const { boxes, scores } = net.forwardInput(input);
    return { boxes: boxes[0], scores: scores[0] };
  }
  throw new Error(`unknown net ${name}`);
}

(async () => {
  const [name, modelDir, inputPath, outputPath] = process.argv.slice(2);
  if (!MODELS[name]) throw new Error(`net must be one of ${Object.keys(MODELS).join(', ')}`);
  await tf.setBackend('cpu');
  await faceapi.tf.setBackend('cpu');
  await tf.ready();
  const { shape } = JSON.parse(fs.readFileSync(`${inputPath}.json`));
  const raw = fs.readFileSync(inputPath);
  const pixels = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const net = loadNet(name, modelDir);
  const [n, h, w, c] = shape;
  const collected = {};
  let ms = 0;
  for (let i = 0; i < n; i += 1) {
    const image = tf.tensor3d(pixels.subarray(i * h * w * c, (i + 1) * h * w * c), [h, w, c], 'float32');
    const start = performance.now();
    const outs = await outputsOf(name, net, image);
    const values = {};
    for (const [key, t] of Object.entries(outs)) values[key] = { shape: t.shape, data: Array.from(await t.data()) };
    ms += performance.now() - start;
    for (const [key, v] of Object.entries(values)) {
      if (!collected[key]) collected[key] = { shape: [n, ...v.shape.slice(v.shape[0] === 1 ? 1 : 0)], data: [] };
      collected[key].data.push(...v.data);
    }
    Object.values(outs).forEach((t) => t.dispose());
    image.dispose();
  }
  fs.writeFileSync(outputPath, JSON.stringify({ ...collected, ms_per_image: ms / n, tfjs: tf.version_core }));
})().catch((err) => { console.error(err.stack || String(err)); process.exit(1); });
