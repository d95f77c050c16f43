// Records tests/fixtures/page_seed_draws.json from the page's own code (tensorflow/playground src/nn.ts and
// src/dataset.ts), driven as src/playground.ts drives them: Math.seedrandom(seed), the dataset's generator,
// shuffle, split, buildNetwork, then oneStep per epoch. Built from ../shared/playground with:
//   cp -r ../shared/playground /tmp/pg && chmod -R u+w /tmp/pg && cd /tmp/pg && npm ci --no-audit --no-fund
//   node_modules/.bin/tsc --module commonjs --target es5 --outDir build src/nn.ts src/dataset.ts src/seedrandom.d.ts
//   NODE_PATH=/tmp/pg/node_modules node tests/record_page_draws.js /tmp/pg/build > tests/fixtures/page_seed_draws.json
require("seedrandom");  // defines Math.seedrandom, as the page's lib.js does
const build = process.argv[2];
const nn = require(build + "/nn");
const dataset = require(build + "/dataset");

const GENERATORS = {circle: dataset.classifyCircleData, xor: dataset.classifyXORData,
                    gauss: dataset.classifyTwoGaussData, spiral: dataset.classifySpiralData};
// src/playground.ts's INPUTS, in its order, by the port's feature names
const INPUTS = {"x1": (x, y) => x, "x2": (x, y) => y, "x1^2": (x, y) => x * x, "x2^2": (x, y) => y * y,
                "x1*x2": (x, y) => x * y, "sin(x1)": (x, y) => Math.sin(x), "sin(x2)": (x, y) => Math.sin(y)};
const ACTIVATIONS = {relu: nn.Activations.RELU, tanh: nn.Activations.TANH, sigmoid: nn.Activations.SIGMOID,
                     linear: nn.Activations.LINEAR};
const REGULARIZATIONS = {none: null, L1: nn.RegularizationFunction.L1, L2: nn.RegularizationFunction.L2};
const SHOWN = 20;  // data points kept per split; sums cover the rest
const EPOCHS = 20;  // losses at every epoch up to here
const LATER = [50, 100, 200];  // and at these

const CONFIGS = [
  {dataset: "spiral", noise: 0, train_percent: 50, features: ["x1", "x2", "sin(x1)", "sin(x2)"], hidden: [8, 8, 8],
   activation: "tanh", lr: 0.1, regularization: "none", reg_rate: 0, batch_size: 10, seed: 7},
  {dataset: "circle", noise: 20, train_percent: 30, features: ["x1", "x2"], hidden: [4, 2],
   activation: "relu", lr: 0.03, regularization: "L2", reg_rate: 0.01, batch_size: 1, seed: 3},
  {dataset: "xor", noise: 10, train_percent: 30, features: Object.keys(INPUTS), hidden: [8, 8, 8, 8, 8, 8],
   activation: "sigmoid", lr: 0.3, regularization: "L1", reg_rate: 0.003, batch_size: 10, seed: 11},
  {dataset: "gauss", noise: 50, train_percent: 50, features: ["x1", "x2"], hidden: [],
   activation: "linear", lr: 0.01, regularization: "none", reg_rate: 0, batch_size: 5, seed: 0},
  {dataset: "spiral", noise: 25, train_percent: 90, features: ["x1", "x2", "x1^2", "x2^2", "x1*x2"],
   hidden: [8, 6, 4], activation: "tanh", lr: 0.03, regularization: "L1", reg_rate: 0.01, batch_size: 30, seed: 123},
];

function record(c) {
  const input = (p) => c.features.map((f) => INPUTS[f](p.x, p.y));
  const loss = (network, points) => points.reduce(
    (sum, p) => sum + nn.Errors.SQUARE.error(nn.forwardProp(network, input(p)), p.label), 0) / points.length;
  Math.seedrandom(String(c.seed));
  const data = GENERATORS[c.dataset](500, c.noise / 100);
  dataset.shuffle(data);
  const split = Math.floor(data.length * c.train_percent / 100);
  const train = data.slice(0, split), test = data.slice(split);
  const network = nn.buildNetwork([c.features.length, ...c.hidden, 1], ACTIVATIONS[c.activation],
                                  nn.Activations.TANH, REGULARIZATIONS[c.regularization], c.features, false);
  // per layer (fan_in, fan_out), as the port stores them; biases per neuron
  const weights = network.slice(1).map((layer, l) => network[l].map((_, j) => layer.map((node) => node.inputLinks[j].weight)));
  const biases = network.slice(1).map((layer) => layer.map((node) => node.bias));
  const sums = (points) => ["x", "y", "label"].map((k) => points.reduce((s, p) => s + p[k], 0));
  const head = (points) => points.slice(0, SHOWN).map((p) => [p.x, p.y, p.label]);
  const losses = {0: [loss(network, train), loss(network, test)]};
  for (let epoch = 1; epoch <= Math.max(...LATER); epoch++) {
    train.forEach((p, i) => {  // src/playground.ts oneStep
      nn.forwardProp(network, input(p));
      nn.backProp(network, p.label, nn.Errors.SQUARE);
      if ((i + 1) % c.batch_size === 0) nn.updateWeights(network, c.lr, c.reg_rate);
    });
    if (epoch <= EPOCHS || LATER.includes(epoch)) losses[epoch] = [loss(network, train), loss(network, test)];
  }
  return {config: c, train_head: head(train), test_head: head(test), train_sums: sums(train), test_sums: sums(test),
          weights, biases, losses};
}

// the first draws of Math.random after Math.seedrandom(seed), for seeds short and long (over 256 characters)
const SEEDS = ["0", "7", "123", "0.54321", "x".repeat(300)];
const draws = SEEDS.map((seed) => { Math.seedrandom(seed); return [...Array(8)].map(Math.random); });

process.stdout.write(JSON.stringify({source: "tensorflow/playground 02469bd src/nn.ts, src/dataset.ts; seedrandom",
                                     seeds: SEEDS, draws, runs: CONFIGS.map(record)}) + "\n");
