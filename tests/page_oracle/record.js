// The Neural Network Playground's own code run as an oracle for codes/playground.py: writes
// tests/fixtures/page_oracle.json (read by tests/test_page_oracle.py).
//
// It records the first numbers Math.random draws after Math.seedrandom(seed) for a few seeds, and
// it drives the page's src/nn.ts and src/dataset.ts (tensorflow/playground, Apache-2.0) as
// src/playground.ts does: Math.seedrandom(seed), the dataset's 500 points, shuffle, the split,
// then the network built with the page's random initial weights; every epoch one pass over the
// training points in order with an update after every batchSize-th one (its oneStep), and the
// mean loss over each set at epoch 0 and after every epoch (its getLoss). It records, per
// configuration, the points, the initial weights and biases, and both loss curves.
//
// Build the page's code (a clone of tensorflow/playground, here at commit 02469bd), then record:
//   cp -r ../shared/playground /tmp/page-pg && chmod -R u+w /tmp/page-pg
//   cd /tmp/page-pg && npm ci --no-audit --no-fund
//   node_modules/.bin/tsc --module commonjs --target es5 --outDir build-node \
//       src/nn.ts src/dataset.ts src/seedrandom.d.ts
//   cd - && node tests/page_oracle/record.js /tmp/page-pg/build-node > tests/fixtures/page_oracle.json
"use strict";
const path = require("path");

const built = path.resolve(process.argv[2] || "build-node");
const nn = require(path.join(built, "nn.js"));
const dataset = require(path.join(built, "dataset.js"));
// the page loads seedrandom as a script that adds Math.seedrandom; called on Math, it replaces Math.random
Math.seedrandom = require(require.resolve("seedrandom", {paths: [built]}));

const EPOCHS = 200;
const EPOCHS_BATCH_1 = 50;  // an update after every point: as many updates as 200 epochs of batch 4
const POINTS = 500;
// the page's inputs in its order (INPUTS in src/playground.ts), with codes/playground.py's names
const INPUTS = [["x1", (x, y) => x], ["x2", (x, y) => y], ["x1^2", (x, y) => x * x], ["x2^2", (x, y) => y * y],
                ["x1*x2", (x, y) => x * y], ["sin(x1)", (x, y) => Math.sin(x)], ["sin(x2)", (x, y) => Math.sin(y)]];
const DATASETS = {circle: dataset.classifyCircleData, xor: dataset.classifyXORData,
                  gauss: dataset.classifyTwoGaussData, spiral: dataset.classifySpiralData};
const ACTIVATIONS = {relu: nn.Activations.RELU, tanh: nn.Activations.TANH, sigmoid: nn.Activations.SIGMOID,
                     linear: nn.Activations.LINEAR};
const REGULARIZATIONS = {none: null, L1: nn.RegularizationFunction.L1, L2: nn.RegularizationFunction.L2};

// together: every activation, L1 and L2, 0 to 6 hidden layers, batch sizes 1 and 10 (and 7, whose last
// points of an epoch join the next epoch's first update), the four classification datasets
const CONFIGS = [
  {dataset: "circle", noise: 0, train_percent: 50, features: ["x1", "x2"], hidden: [4, 2], activation: "relu",
   lr: 0.03, regularization: "none", reg_rate: 0, batch_size: 10, seed: 1},
  {dataset: "xor", noise: 0, train_percent: 50, features: ["x1", "x2", "x1*x2"], hidden: [], activation: "tanh",
   lr: 0.1, regularization: "L2", reg_rate: 0.01, batch_size: 10, seed: 2},
  {dataset: "gauss", noise: 20, train_percent: 50, features: ["x1", "x2"], hidden: [3], activation: "sigmoid",
   lr: 0.3, regularization: "L1", reg_rate: 0.003, batch_size: 1, seed: 3},
  {dataset: "spiral", noise: 0, train_percent: 50, features: ["x1", "x2", "sin(x1)", "sin(x2)"], hidden: [8, 8, 8],
   activation: "tanh", lr: 0.1, regularization: "none", reg_rate: 0, batch_size: 10, seed: 7},
  {dataset: "spiral", noise: 10, train_percent: 50, features: INPUTS.map(([name]) => name), hidden: [6, 6, 6, 6, 6, 6],
   activation: "linear", lr: 0.001, regularization: "L2", reg_rate: 0.003, batch_size: 10, seed: 5},
  {dataset: "circle", noise: 10, train_percent: 30, features: INPUTS.map(([name]) => name), hidden: [5, 5, 5, 5],
   activation: "relu", lr: 0.01, regularization: "L1", reg_rate: 0.001, batch_size: 1, seed: 6},
  {dataset: "xor", noise: 25, train_percent: 70, features: ["x1", "x2"], hidden: [4, 4, 4, 4, 4],
   activation: "tanh", lr: 0.03, regularization: "L1", reg_rate: 0.001, batch_size: 7, seed: 8},
  {dataset: "gauss", noise: 50, train_percent: 90, features: ["x1", "x2", "x1^2", "x2^2"], hidden: [2],
   activation: "linear", lr: 0.01, regularization: "L2", reg_rate: 0.1, batch_size: 1, seed: 9},
];

function record(config) {
  const inputs = INPUTS.filter(([name]) => config.features.includes(name));
  const input = point => inputs.map(([, f]) => f(point.x, point.y));
  // generateData(true): the seed, the points, one shuffle, the split
  Math.seedrandom(String(config.seed));
  const data = DATASETS[config.dataset](POINTS, config.noise / 100);
  dataset.shuffle(data);
  const split = Math.floor(data.length * config.train_percent / 100);
  const train = data.slice(0, split), test = data.slice(split);
  // reset(): the network, drawing its weights from the same generator after the data
  const network = nn.buildNetwork([inputs.length, ...config.hidden, 1], ACTIVATIONS[config.activation],
      nn.Activations.TANH, REGULARIZATIONS[config.regularization], inputs.map(([name]) => name), false);
  const layers = network.slice(1);
  const weights = layers.map(layer => layer[0].inputLinks.map((_, i) => layer.map(node => node.inputLinks[i].weight)));
  const biases = layers.map(layer => layer.map(node => node.bias));
  const loss = points => points.reduce((sum, p) =>
      sum + nn.Errors.SQUARE.error(nn.forwardProp(network, input(p)), p.label), 0) / points.length;
  const trainLoss = [loss(train)], testLoss = [loss(test)];
  const epochs = config.batch_size === 1 ? EPOCHS_BATCH_1 : EPOCHS;
  for (let epoch = 0; epoch < epochs; epoch++) {  // oneStep
    train.forEach((point, i) => {
      nn.forwardProp(network, input(point));
      nn.backProp(network, point.label, nn.Errors.SQUARE);
      if ((i + 1) % config.batch_size === 0) {
        nn.updateWeights(network, config.lr, config.reg_rate);
      }
    });
    trainLoss.push(loss(train));
    testLoss.push(loss(test));
  }
  const xy = points => points.map(p => [p.x, p.y]);
  return {config, epochs, train_points: xy(train), train_labels: train.map(p => p.label), test_points: xy(test),
          test_labels: test.map(p => p.label), weights, biases, train_loss: trainLoss, test_loss: testLoss};
}

// the first draws of Math.random after Math.seedrandom(seed), for seeds short and long (over 256 characters)
const SEEDS = ["0", "7", "123", "0.54321", "x".repeat(300)];
const draws = SEEDS.map(seed => { Math.seedrandom(seed); return [...Array(8)].map(Math.random); });

process.stdout.write(JSON.stringify({
  source: "tensorflow/playground src/nn.ts and src/dataset.ts, driven by tests/page_oracle/record.js",
  runs: CONFIGS.map(record), seeds: SEEDS, draws}) + "\n");
